"""Shared fixtures: a Label Studio user, organization and project, and a logged-in API client.

Real S3 endpoints (moto over HTTP and HTTPS, and the CORTX-profile filter) come from
tests/endpoint_fixtures.py.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.compat_check", "tests.endpoint_fixtures"]

IMAGE_CONFIG = """
<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Cat"/><Label value="Dog"/>
  </RectangleLabels>
  <Choices name="quality" toName="image"><Choice value="good"/><Choice value="bad"/></Choices>
</View>
"""


@pytest.fixture(autouse=True)
def _fresh_clients():
    # Rows and clients kept between requests: a rolled-back test's storage id is the next test's too (SQLite).
    from label_studio_cortx import media_storages
    from label_studio_cortx.connection import client

    client.clear_cache()
    media_storages.rows.forget()
    yield
    client.clear_cache()
    media_storages.rows.forget()


@pytest.fixture
def user(db):
    from organizations.models import Organization
    from users.models import User

    user = User.objects.create_user(email="owner@example.com", password="secret-pass-123", username="owner")
    organization = Organization.create_organization(created_by=user, title="Test organization")
    user.active_organization = organization
    user.save(update_fields=["active_organization"])
    return user


@pytest.fixture
def project(user):
    from projects.models import Project

    return Project.objects.create(
        title="CORTX project", created_by=user, organization=user.active_organization, label_config=IMAGE_CONFIG
    )


@pytest.fixture
def tokens(user):
    """The user's legacy API token (enabled for the organization, as Label Studio does for LABEL_STUDIO_USER_TOKEN)
    and a JWT access token (what the SDK sends after exchanging a personal access token)."""
    from jwt_auth.models import LSAPIToken
    from rest_framework.authtoken.models import Token

    jwt = user.active_organization.jwt
    jwt.legacy_api_tokens_enabled = True
    jwt.save()
    return Token.objects.get_or_create(user=user)[0].key, str(LSAPIToken.for_user(user).access_token)


@pytest.fixture
def api(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user=user)
    return client
