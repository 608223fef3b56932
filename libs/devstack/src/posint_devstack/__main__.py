from posint_devstack.launcher import main

raise SystemExit(main())
