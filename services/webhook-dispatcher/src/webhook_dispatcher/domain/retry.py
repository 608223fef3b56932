"""What happens after an attempt: delivered, retried later (the schedule with jitter, or the
receiver's Retry-After on 429/503), given up, or the endpoint disabled (410). No I/O."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

HONOURS_RETRY_AFTER = (429, 503)
GONE = 410


@dataclass(frozen=True)
class RetryPolicy:
    schedule: tuple[float, ...]  # seconds before retry 1, 2, ...; len(schedule) retries after the first attempt
    jitter: float = 0.2
    retry_after_max_s: float = 36_000
    disable_after_s: float = 5 * 86_400

    def delay(self, attempts_made: int, status: int | None, retry_after: str | None, now: datetime,
              rand: random.Random | None = None) -> float | None:
        """Seconds until the next attempt after ``attempts_made`` failed ones, or None: give up."""
        if attempts_made > len(self.schedule):
            return None
        if status in HONOURS_RETRY_AFTER and retry_after is not None:
            asked = retry_after_seconds(retry_after, now)
            if asked is not None:
                return min(asked, self.retry_after_max_s)
        step = self.schedule[attempts_made - 1]
        return step * (1 + (rand or random).uniform(-self.jitter, self.jitter))

    def failing_too_long(self, failing_since: datetime, now: datetime) -> bool:
        return now - failing_since >= timedelta(seconds=self.disable_after_s)


def retry_after_seconds(value: str, now: datetime) -> float | None:
    """``Retry-After`` as delay-seconds or an HTTP date; None when it is neither."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())
