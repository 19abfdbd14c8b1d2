from caaspp_cli.cli.app import main

main()
