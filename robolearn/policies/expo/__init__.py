"""EXPO's exported policy: the (EMA) base chunk policy, the edit head and the Q ensemble that ranks them."""
