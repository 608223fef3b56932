"""The compose `setup` step creates topics for the records the services are set to take: a raised
KAFKA_MAX_RECORD_BYTES reaches the topics' max.message.bytes (a real Kafka refuses larger records)."""
import os
import subprocess
import sys

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from posint_common.contracts import topics

RAISED = 8 * 1024 * 1024


async def test_setup_creates_topics_for_a_raised_record_size(fresh_infra, compose):
    env = {key: str(value) for key, value in compose["services"]["setup"]["environment"].items()}
    env.update(DATABASE_URL=fresh_infra.database_url, KAFKA_BOOTSTRAP_SERVERS=fresh_infra.bootstrap_servers,
               KAFKA_MAX_RECORD_BYTES=str(RAISED))
    result = subprocess.run([sys.executable, "-m", "posint_devstack.setup"], env={"PATH": os.environ["PATH"], **env},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    admin = AIOKafkaAdminClient(bootstrap_servers=fresh_infra.bootstrap_servers)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics.INTEGRATIONS_EVENTS)])
    finally:
        await admin.close()
    [(error, _, _, _, entries)] = response.resources
    assert error == 0
    assert int({entry[0]: entry[1] for entry in entries}["max.message.bytes"]) == RAISED
