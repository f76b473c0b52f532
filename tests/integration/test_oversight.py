"""`records_by_referral`: what oversight may ask each agency's service about the records it
holds per referral. Codes and ids only; coordinators and administrators only; bad ids named."""

import uuid

import pytest
from nameko.standalone.rpc import ClusterRpcClient

from case_management.service import CaseManagementService
from concord_contracts.codes import Organisation, Role
from concord_kit.errors import BadInput, Forbidden
from concord_kit.identity import Caller
from justice_liaison.service import JusticeLiaisonService
from tests.conftest import AMQP_URI

pytestmark = pytest.mark.integration

COORDINATOR = Caller("ov-coordinator", Role.coordinator, Organisation.coordination_body)
SOCIAL = Caller("ov-social", Role.social_worker, Organisation.social_services)


@pytest.fixture
def services(container_factory, nameko_config, tmp_path, monkeypatch):
    monkeypatch.setenv("CONCORD_VAR_DIR", str(tmp_path))
    for service_class in (CaseManagementService, JusticeLiaisonService):
        container_factory(service_class, nameko_config).start()


def client(caller: Caller) -> ClusterRpcClient:
    return ClusterRpcClient(context_data=caller.as_context(), uri=AMQP_URI, timeout=30)


@pytest.mark.parametrize("service", ["case_management", "justice_liaison"])
def test_oversight_asks_the_owner_and_nobody_else_may(services, service):
    unknown = str(uuid.uuid4())
    with client(COORDINATOR) as rpc:
        assert getattr(rpc, service).records_by_referral([unknown]) == {unknown: []}
        with pytest.raises(BadInput) as refused:
            getattr(rpc, service).records_by_referral([unknown, "not-an-id"])
        assert refused.value.errors == {"coordination_ids": {"1": ["Not a valid UUID."]}}
        with pytest.raises(BadInput):
            getattr(rpc, service).records_by_referral([])
    with client(SOCIAL) as rpc, pytest.raises(Forbidden):
        getattr(rpc, service).records_by_referral([unknown])
