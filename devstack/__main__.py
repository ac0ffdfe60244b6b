from devstack.main import main

main()
