from dcinet.app.cli import run

run()
