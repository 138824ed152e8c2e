"""Models made by Stable-Baselines3 and in CleanRL's layouts, for the `foreign_models` tests.

    python foreign_models.py make OUTDIR
        Writes SB3 archives saved by SB3 itself (`model.save`) on its own Atari environments,
        CleanRL state dicts saved with `torch.save(agent.state_dict())` from CleanRL's network
        layouts, real observations from SB3's Atari pipeline, and every model's PyTorch
        outputs on them (refs.json).

    python foreign_models.py predict MODEL.zip OBS.u8
        Prints SB3's own `model.predict(obs, deterministic=True)` actions (JSON list) for u8
        observations `[K, 4, 84, 84]`.
"""

import json
import sys
import zipfile
from pathlib import Path

import ale_py
import gymnasium as gym
import numpy as np
import torch
from torch import nn

from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack, VecTransposeImage

gym.register_envs(ale_py)
torch.manual_seed(0)
STEPS = 48  # observations per game


def atari(game, n_stack=4):
    """SB3's Atari pipeline: AtariWrapper, VecFrameStack, VecTransposeImage (channel-first)."""
    env = make_atari_env(f"{game}NoFrameskip-v4", n_envs=1, seed=1)
    return VecTransposeImage(VecFrameStack(env, n_stack=n_stack))


def observations(game):
    """Real frames from SB3's pipeline under a fixed random policy: u8 [STEPS, 4, 84, 84]."""
    env = atari(game)
    rng = np.random.default_rng(3)
    obs, out = env.reset(), []
    for _ in range(STEPS):
        out.append(obs[0].copy())
        obs, *_ = env.step(np.array([rng.integers(env.action_space.n)]))
    return np.stack(out)


# CleanRL's networks, layer for layer (ppo_atari.py Agent, dqn_atari.py QNetwork,
# ppo_atari_lstm.py Agent), so their state dicts carry CleanRL's names and shapes.
def nature_trunk(frames):
    return nn.Sequential(
        nn.Conv2d(frames, 32, 8, stride=4), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU(),
    )


class PpoAgent(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.network = nature_trunk(4)
        self.actor = nn.Linear(512, n)
        self.critic = nn.Linear(512, 1)

    def forward(self, x):
        hidden = self.network(x / 255.0)
        return self.actor(hidden), self.critic(hidden)


class QNetwork(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.network = nn.Sequential(*nature_trunk(4), nn.Linear(512, n))

    def forward(self, x):
        return self.network(x / 255.0)


class LstmAgent(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.network = nature_trunk(1)
        self.lstm = nn.LSTM(512, 128)
        self.actor = nn.Linear(128, n)
        self.critic = nn.Linear(128, 1)

    def sequence(self, frames):
        """Logits of one environment's frames [T, 1, 84, 84] in order, state carried."""
        state = (torch.zeros(1, 1, 128), torch.zeros(1, 1, 128))
        out = []
        for x in frames:
            h, state = self.lstm(self.network(x[None] / 255.0)[None], state)
            out.append(self.actor(h[0]))
        return torch.cat(out)


def make(out):
    out.mkdir(parents=True, exist_ok=True)
    obs = {g: observations(g) for g in ("Breakout", "Pong")}
    for g, o in obs.items():
        (out / f"obs_{g.lower()}.u8").write_bytes(o.tobytes())
    refs = {}

    def sb3_ref(name, model, game):
        model.save(out / name)
        x = torch.as_tensor(obs[game])
        with torch.no_grad():
            if isinstance(model, DQN):
                refs[name] = {"q_values": model.policy.q_net(x).tolist()}
            else:
                # The action net's raw output (Categorical's .logits are normalised).
                policy = model.policy
                features = policy.extract_features(x, policy.pi_features_extractor)
                logits = policy.action_net(policy.mlp_extractor.forward_actor(features))
                refs[name] = {
                    "logits": logits.tolist(),
                    "value": model.policy.predict_values(x).tolist(),
                }

    breakout, pong = atari("Breakout"), atari("Pong")
    ppo = PPO("CnnPolicy", breakout, seed=1, n_steps=64, batch_size=32, n_epochs=2)
    ppo.learn(128)
    sb3_ref("sb3_ppo_breakout.zip", ppo, "Breakout")
    a2c = A2C("CnnPolicy", breakout, seed=2, n_steps=16)
    a2c.learn(64)
    sb3_ref("sb3_a2c_breakout.zip", a2c, "Breakout")
    dqn = DQN("CnnPolicy", pong, seed=3, buffer_size=500, learning_starts=32, train_freq=4)
    dqn.learn(96)
    sb3_ref("sb3_dqn_pong.zip", dqn, "Pong")
    raw = PPO("CnnPolicy", breakout, seed=4, n_steps=64, batch_size=32,
              policy_kwargs={"normalize_images": False})
    sb3_ref("sb3_ppo_breakout_unnormalized.zip", raw, "Breakout")

    # What must be refused.
    PPO("MlpPolicy", "CartPole-v1", seed=1).save(out / "sb3_ppo_mlp_cartpole.zip")
    PPO("CnnPolicy", atari("Breakout", n_stack=3), seed=1, n_steps=64).save(
        out / "sb3_ppo_stack3_breakout.zip")
    PPO("CnnPolicy", breakout, seed=1, n_steps=64,
        policy_kwargs={"share_features_extractor": False}).save(out / "sb3_ppo_separate_breakout.zip")
    PPO("CnnPolicy", breakout, seed=1, n_steps=64,
        policy_kwargs={"net_arch": [64]}).save(out / "sb3_ppo_netarch_breakout.zip")
    # A vector observation space: the PPO archive with `data` saying Box [8] float32.
    src = zipfile.ZipFile(out / "sb3_ppo_breakout.zip")
    data = json.loads(src.read("data"))
    data["observation_space"]["_shape"], data["observation_space"]["dtype"] = [8], "float32"
    with zipfile.ZipFile(out / "sb3_ppo_vector_obs.zip", "w") as dst:
        for name in src.namelist():
            dst.writestr(name, json.dumps(data) if name == "data" else src.read(name))

    # CleanRL: saved, then loaded back into a fresh network for the reference outputs.
    def cleanrl(name, net):
        torch.save(net.state_dict(), out / name)
        net.load_state_dict(torch.load(out / name))
        return net

    x = torch.as_tensor(obs["Breakout"]).float()
    with torch.no_grad():
        logits, value = cleanrl("cleanrl_ppo_breakout.cleanrl_model", PpoAgent(4))(x)
        refs["cleanrl_ppo_breakout.cleanrl_model"] = {"logits": logits.tolist(), "value": value.tolist()}
        x = torch.as_tensor(obs["Pong"]).float()
        q = cleanrl("cleanrl_dqn_pong.cleanrl_model", QNetwork(6))(x)
        refs["cleanrl_dqn_pong.cleanrl_model"] = {"q_values": q.tolist()}
        lstm = cleanrl("cleanrl_lstm_pong.cleanrl_model", LstmAgent(6))
        refs["cleanrl_lstm_pong.cleanrl_model"] = {"logits": lstm.sequence(x[:, -1:]).tolist()}
    (out / "refs.json").write_text(json.dumps(refs))


def predict(model_path, obs_path):
    obs = np.frombuffer(Path(obs_path).read_bytes(), np.uint8).reshape(-1, 4, 84, 84)
    cls = {"dqn": DQN, "a2c": A2C}.get(Path(model_path).name.split("_")[1], PPO)
    model = cls.load(model_path, device="cpu")
    actions, _ = model.predict(obs, deterministic=True)
    print(json.dumps([int(a) for a in actions]))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(Path(sys.argv[2]))
    else:
        predict(sys.argv[2], sys.argv[3])
