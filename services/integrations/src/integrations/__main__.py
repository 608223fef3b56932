from posint_common.runtime import main
from posint_common.settings import ServiceSettings, load_settings

from integrations.bootstrap import NAME, bootstrap

if __name__ == "__main__":
    settings = load_settings(ServiceSettings)
    main(NAME, lambda: bootstrap(settings), settings)
