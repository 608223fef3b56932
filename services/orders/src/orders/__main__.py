from posint_common.runtime import main
from posint_common.settings import load_settings

from orders.bootstrap import NAME, bootstrap
from orders.config import OrdersSettings

if __name__ == "__main__":
    settings = load_settings(OrdersSettings)
    main(NAME, lambda: bootstrap(settings), settings)
