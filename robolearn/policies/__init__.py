"""Networks and policies: encoders, U-Net, diffusion, consistency, Gaussian, residual heads."""
