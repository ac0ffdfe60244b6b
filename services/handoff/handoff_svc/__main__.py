from handoff_svc.entrypoints.main import main

main()
