"""Networks and policies: encoders, U-Net, diffusion, consistency, Gaussian, residual heads.

Imports stay lazy (torch and diffusers load only when a policy is built):
``robolearn.policies.registry.policy_class("diffusion")``.
"""
