"""What a round is worth and to whom: contributions, payouts, costs, and what organizations send
in place of an honest update.  (The held-out benchmark that values coalitions is
:mod:`fedenv.data.benchmark`: the engine evaluates with it, so it sits below the engine.)

- :mod:`~fedenv.scoring.contribution`: leave-one-out, exact and truncated Monte-Carlo Shapley;
- :mod:`~fedenv.scoring.incentives`: the registry of payout mechanisms;
- :mod:`~fedenv.scoring.costs`: compute, communication and ledger costs;
- :mod:`~fedenv.scoring.behaviours`: free riders, noise and boosted updates.
"""
