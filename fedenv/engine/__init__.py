"""The federated LoRA engine: one base model, one global adapter, rounds of local training and
aggregation, and coalition evaluation without committing.

- :mod:`~fedenv.engine.federation`: :class:`FederatedEngine`, the engine itself;
- :mod:`~fedenv.engine.rounds`: its records (settings, participants, client updates, rounds);
- :mod:`~fedenv.engine.local_training`: tokenized datasets and the local AdamW loop;
- :mod:`~fedenv.engine.lora`: adapters as plain data (canonical bytes, digests, dense deltas);
- :mod:`~fedenv.engine.aggregators`: FedAvg, exact FFA-LoRA and FLoRA;
- :mod:`~fedenv.engine.build`: a scenario's engine on the shared base model and benchmark;
- :mod:`~fedenv.engine.demo`: ``python -m fedenv.engine``.
"""
