"""The tanh-Gaussian actor of the SAC-family RL algorithms, as a policy every command can load."""
