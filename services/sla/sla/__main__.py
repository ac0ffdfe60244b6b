from sla.entrypoints.main import main

main()
