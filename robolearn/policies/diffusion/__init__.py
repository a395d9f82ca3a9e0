"""Diffusion Policy (Chi et al. 2023): DDPM training, DDPM/DDIM sampling."""
