from posint_common.runtime import main
from posint_common.settings import load_settings

from integrations.bootstrap import NAME, bootstrap
from integrations.config import IntegrationsSettings

if __name__ == "__main__":
    settings = load_settings(IntegrationsSettings)
    main(NAME, lambda: bootstrap(settings), settings)
