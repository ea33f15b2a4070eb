"""How much structure a model's embedding tables hold, beyond what a 2-D map shows.

    python benchmarks/embedding_structure.py RUN [RUN...] --data DIR

For each model (run or model directory): the nearest-neighbour label agreement of its session
embeddings by animal, task and lab, in the full table and on the 2-D PCA map of `neuropoyo
embeddings` (the fraction of sessions whose nearest other session, Euclidean, has the same label;
chance = same-label pairs / all pairs); then, for every pair of sessions that record units of the
same id (the same neuron, in the simulator), how often a unit's most similar unit (cosine) of the
other session is that same unit, against chance (1 / that session's units, summed), totalled over
the ordered pairs of sessions of the same task and of different tasks.
"""

from __future__ import annotations

import argparse
from itertools import permutations

import numpy as np

from neuropoyo.trained import load_model
from neuropoyo.evaluation.embeddings import map_embeddings, session_infos
from neuropoyo.machine import machine_line


def agreement(points: np.ndarray, labels: list[str]) -> tuple[float, float]:
    """(N, D) points -> (fraction whose nearest other point has the same label, its chance level)."""
    labels = np.asarray(labels)
    distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    _, counts = np.unique(labels, return_counts=True)
    n = len(labels)
    return float(np.mean(labels[distance.argmin(axis=1)] == labels)), float(np.sum(counts * (counts - 1)) / (n * (n - 1)))


def unit_rows_by_session(trained, unit_map) -> dict[str, dict[str, np.ndarray]]:
    """session key -> {unit id within the session: (D,) unit-norm embedding row}."""
    rows = trained.model.unit_emb.weight.detach().double().numpy()
    rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    found: dict[str, dict[str, np.ndarray]] = {}
    for k, (key, session) in enumerate(zip(unit_map.ids, unit_map.labels["session"])):
        found.setdefault(session, {})[key[len(session) + 1 :]] = rows[k]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run or model directories")
    parser.add_argument("--data", nargs="+", required=True, help="the recordings the models were trained on")
    args = parser.parse_args()
    print(machine_line())
    for run in args.runs:
        trained = load_model(run)
        infos, _ = session_infos(trained, args.data)
        sessions, units = map_embeddings(trained, infos)
        table = trained.model.session_emb.weight.detach().double().numpy()
        print(f"\n{run}: {len(sessions.ids)} sessions, {len(units.ids)} units")
        print(f"{'sessions by':<12}{'full table':>11}{'2-D map':>9}{'chance':>8}")
        for column in ("animal", "task", "lab"):
            full, chance = agreement(table, sessions.labels[column])
            flat, _ = agreement(sessions.xy, sessions.labels[column])
            print(f"{column:<12}{full:>11.2f}{flat:>9.2f}{chance:>8.2f}")
        by_session = unit_rows_by_session(trained, units)
        task = dict(zip(sessions.ids, sessions.labels["task"]))
        totals = {True: np.zeros(3), False: np.zeros(3)}  # same task? -> shared, same unit, chance
        for a, b in permutations(sessions.ids, 2):
            shared = sorted(set(by_session.get(a, {})) & set(by_session.get(b, {})))
            if shared:
                ids_b = list(by_session[b])
                rows_b = np.stack([by_session[b][u] for u in ids_b])
                best = [ids_b[int(np.argmax(rows_b @ by_session[a][u]))] for u in shared]
                hits = sum(u == v for u, v in zip(shared, best))
                totals[task[a] == task[b]] += (len(shared), hits, len(shared) / len(ids_b))
        print(f"{'units shared by two sessions':<32}{'units':>7}{'same unit most similar':>24}{'chance':>8}")
        for same, (shared, hits, chance) in totals.items():
            print(f"{'of the same task' if same else 'of different tasks':<32}{shared:>7.0f}{hits:>24.0f}{chance:>8.1f}")

if __name__ == "__main__":
    main()
