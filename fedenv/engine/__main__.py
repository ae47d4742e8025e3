"""``python -m fedenv.engine --orgs 4 --rounds 5``: the federated engine alone (see
:mod:`fedenv.engine.demo`)."""

from fedenv.engine.demo import main

raise SystemExit(main())
