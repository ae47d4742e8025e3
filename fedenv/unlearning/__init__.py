"""Unlearning: an organization asks to be forgotten, and anyone can check that it was.

- :mod:`~fedenv.unlearning.unlearner`: :class:`Unlearner`, the requests of an episode carried
  out (signed request, purge, rebuild, measures, certificate);
- :mod:`~fedenv.unlearning.methods`: ``exact_replay``, ``retrain`` (the oracle),
  ``calibrated_replay`` (FedEraser) and ``lora_gradient_ascent``;
- :mod:`~fedenv.unlearning.calibration`: which rounds ``calibrated_replay`` calibrates, within
  ``calibration_budget``;
- :mod:`~fedenv.unlearning.episode`: the rounds so far and the run folder's files they left;
- :mod:`~fedenv.unlearning.replay`: stored updates replayed into a global state (no model);
- :mod:`~fedenv.unlearning.measures`: forget/retain accuracy and NLL, membership inference,
  distance to the oracle;
- :mod:`~fedenv.unlearning.certificate`: the certificate's fields;
- :mod:`~fedenv.unlearning.verify_plugin`: its check under ``python -m chains verify``.

The scenario's side (``[[unlearning]]``, ``[unlearning_policy]``) is
:mod:`fedenv.scenario.unlearning`; the ledgers' (request, purge, certificate records)
:mod:`fedenv.ledgers.forgetting`.  Nothing is imported here, so the verify plugin loads only
what it needs.
"""
