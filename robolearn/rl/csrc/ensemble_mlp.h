// The critic-ensemble operators (ensemble_mlp.cpp), for the whole-update operator to call directly.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace robolearn {

// Q of the listed members: (len(members), B).
at::Tensor ensemble_forward(const at::Tensor& x, at::TensorList params, const at::Tensor& members);

// Q of every member and d Q_e / d x[:, in_start:]: (E, B), (E, B, in - in_start).
std::tuple<at::Tensor, at::Tensor> ensemble_q_input_grad(const at::Tensor& x, at::TensorList params, int64_t in_start);

// Mean squared TD error, its gradient, Adam (step already incremented) and Polyak, in place: (loss, Q before).
std::tuple<at::Tensor, at::Tensor> ensemble_critic_step(const at::Tensor& x, const at::Tensor& y, at::TensorList params,
                                                        at::TensorList exp_avg, at::TensorList exp_avg_sq,
                                                        at::TensorList target, const at::Tensor& step, double lr,
                                                        double beta1, double beta2, double eps, double tau);

// The critic step, then for each member as soon as it is updated, its Q and d Q / d x_after[:, in_start:]
// at another input (the actor's actions): (loss, Q before, Q after at x_after, dQ/dx_after).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ensemble_critic_step_then_q_input_grad(
    const at::Tensor& x, const at::Tensor& y, at::TensorList params, at::TensorList exp_avg, at::TensorList exp_avg_sq,
    at::TensorList target, const at::Tensor& step, double lr, double beta1, double beta2, double eps, double tau,
    const at::Tensor* x_after, int64_t in_start);

}  // namespace robolearn
