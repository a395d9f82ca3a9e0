"""RL algorithms as pure update functions: SAC/RLPD, residual, EXPO, ConRFT."""
