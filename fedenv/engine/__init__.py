"""The federated LoRA engine: one base model, one global adapter, rounds of local training and
aggregation, and coalition evaluation without committing.

- :mod:`~fedenv.engine.federation`: :class:`FederatedEngine`, the engine itself;
- :mod:`~fedenv.engine.settings`: its settings (LoRA, training, base model, benchmark), which a
  scenario embeds as its sections;
- :mod:`~fedenv.engine.rounds`: its records (participants, client updates, rounds);
- :mod:`~fedenv.engine.local_training`: tokenized datasets and the local AdamW loop;
- :mod:`~fedenv.engine.lora`: adapters as plain data (canonical bytes, digests, dense deltas);
- :mod:`~fedenv.engine.aggregators`: FedAvg, exact FFA-LoRA and FLoRA;
- :mod:`~fedenv.engine.build`: an engine on the shared base model and benchmark (a scenario's:
  :mod:`fedenv.scenario.engine`);
- :mod:`~fedenv.engine.demo`: ``python -m fedenv.engine``.
"""
