from smci_dask.cli.main import main

main()
