from dcinet.cli import run

run()
