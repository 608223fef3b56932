from posint_common.runtime import main
from posint_common.settings import load_settings

from gateway.bootstrap import NAME, bootstrap
from gateway.config import GatewaySettings

if __name__ == "__main__":
    settings = load_settings(GatewaySettings)
    main(NAME, lambda: bootstrap(settings), settings)
