"""`pinnwand http`, bound to one address: the bench's pinnwand listens on
127.0.0.1 only (pinnwand's own command binds every address).

    python pinnwand_serve.py CONFIG.toml HOST PORT

Runs in pinnwand's venv (bench/.venv-pinnwand), not in ncpaste's. Mirrors
pinnwand 1.5's `pinnwand --configuration-path CONFIG http --port PORT`:
load the TOML into pinnwand.configuration, create the tables, reap, serve.
"""

import sys
import tomllib


def main() -> None:
    config_path, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from pinnwand import configuration

    with open(config_path, "rb") as fh:
        for key, value in tomllib.load(fh).items():
            setattr(configuration, key, value)

    # database reads configuration.database_uri at import: import it after.
    import tornado.ioloop
    from pinnwand import database, utility
    from pinnwand.http import make_application

    database.Base.metadata.create_all(database._engine)
    utility.reap()
    application = make_application(False)
    application.listen(port, address=host, xheaders=True)
    tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
