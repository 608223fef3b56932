from posint_common.runtime import main
from posint_common.settings import load_settings

from webhook_dispatcher.bootstrap import NAME, bootstrap
from webhook_dispatcher.config import WebhooksSettings

if __name__ == "__main__":
    settings = load_settings(WebhooksSettings)
    main(NAME, lambda: bootstrap(settings), settings)
