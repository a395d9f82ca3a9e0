"""Training loops: collection, BC, online RL, actor/learner, evaluation, the demo job."""
