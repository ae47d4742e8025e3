"""What a round is worth and to whom: contributions, payouts, costs, and what organizations send
in place of an honest update.  (The held-out benchmark that values coalitions is
:mod:`fedenv.data.benchmark`: the engine evaluates with it, so it sits below the engine.)

- :mod:`~fedenv.scoring.contribution`: leave-one-out, exact and truncated Monte-Carlo Shapley;
- :mod:`~fedenv.scoring.incentives`: the registry of payout mechanisms;
- :mod:`~fedenv.scoring.costs`: compute, communication and ledger costs;
- :mod:`~fedenv.scoring.attacks`: what attackers send (free riders, noise, sign flips, boosts,
  poisoned data, sybils), with :mod:`~fedenv.scoring.poisoned_data` and
  :mod:`~fedenv.scoring.attack_measures` (backdoor ASR, false-fact acceptance);
- :mod:`~fedenv.scoring.defence`: the round's screens (:mod:`~fedenv.scoring.screening`,
  :mod:`~fedenv.scoring.robust`, :mod:`~fedenv.scoring.reputation`), and
  :mod:`~fedenv.scoring.accounting`: contributions and pay on the set that is aggregated.
"""
