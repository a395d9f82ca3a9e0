"""`robolearn collect --source policy --checkpoint RUN`: a trained policy records episodes like an expert."""
import torch

from robolearn.data.episode_store import EpisodeStore
from robolearn.train.bc import load_episodes, recipe_from_dict, train_bc
from robolearn.train.collect_cmd import collect


def test_collect_from_a_trained_policy(tmp_path):
    torch.set_num_threads(1)
    demos = tmp_path / "demos"
    collect("sim/pick_cube", "expert", 2, str(demos), max_steps=20, progress=False, log=None)
    recipe = recipe_from_dict({
        "type": "diffusion",
        "policy": {"horizon": 8, "n_action_steps": 4, "down_dims": [8, 16], "step_embed_dim": 8,
                   "state_hidden": [16], "state_feature_dim": 8, "num_inference_steps": 2, "n_groups": 4},
        "train": {"steps": 2, "batch_size": 4, "log_every": 1, "checkpoint_every": 2, "success_only": False},
    })
    train_bc(recipe, load_episodes(demos, success_only=False), tmp_path / "run", progress=False)
    out = tmp_path / "rollouts"
    summary = collect("sim/pick_cube", "policy", 2, str(out), checkpoint=str(tmp_path / "run"), max_steps=12,
                      progress=False, log=None)
    store = EpisodeStore(out)
    assert summary["episodes"] == 2 and len(store) == 2
    ep = store.load(0)
    assert ep.length == 12 and ep.action.shape == (12, 7) and store.summary()["keys"]
    assert ep.meta.get("source") == "policy"
