from gateways.entrypoints.main import main

main()
