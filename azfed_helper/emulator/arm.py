"""The sliver of Azure Resource Manager that az needs: cloud metadata, subscriptions, tenants.

Mixed into the emulated Entra app (same https server); answers only bearers the emulated Entra
issued and that are still live.
"""

from __future__ import annotations

import re
from typing import Any

from .keys import MalformedTokenError, parse_jwt, signature_is_valid
from .server import Reply, Request, json_reply
from .state import EmulatorState, Subscription

ARM_PATHS = ("/subscriptions", "/tenants")
SUBSCRIPTION_PATH = re.compile(r"^/subscriptions/([^/]+)$")


class ArmRoutes:
    """ARM's answers (api-version 2022-12-01 shapes), for :class:`entra.EntraApp`."""

    state: EmulatorState

    def _cloud_metadata(self, api_version: str) -> Any:
        """ARM's cloud metadata: one object for old api-versions, a list from 2022-09-01."""
        host = self.state.authority_host
        audiences = ["https://management.core.windows.net/", f"{host}/"]
        if api_version < "2022-09-01":
            return {
                "galleryEndpoint": f"{host}/gallery/",
                "graphEndpoint": "https://graph.windows.net/",
                "portalEndpoint": f"{host}/portal/",
                "authentication": {"loginEndpoint": host, "audiences": audiences},
            }
        return [
            {
                "name": "AzfedEmulator",
                "portal": f"{host}/portal/",
                "authentication": {
                    "loginEndpoint": host,
                    "audiences": audiences,
                    "tenant": "common",
                    "identityProvider": "AAD",
                },
                "media": f"{host}/media/",
                "graphAudience": "https://graph.windows.net/",
                "graph": "https://graph.windows.net/",
                "microsoftGraphResourceId": "https://graph.microsoft.com/",
                "gallery": f"{host}/gallery/",
                "batch": "https://batch.core.windows.net/",
                "resourceManager": f"{host}/",
                "sqlManagement": "https://management.core.windows.net:8443/",
                "vmImageAliasDoc": f"{host}/aliases.json",
                "suffixes": {
                    "storage": "core.windows.net",
                    "keyVaultDns": "vault.azure.net",
                    "sqlServerHostname": "database.windows.net",
                    "acrLoginServer": "azurecr.io",
                },
            }
        ]

    def _arm(self, request: Request, path: str) -> Reply:
        """Subscriptions and tenants as ARM (api-version 2022-12-01) shows them to a bearer."""
        token = request.bearer()
        if not token or not self._entra_token_is_live(token):
            return json_reply(
                401,
                {
                    "error": {
                        "code": "AuthenticationFailed",
                        "message": "Authentication failed. The 'Authorization' header is missing or invalid.",
                    }
                },
            )
        subscriptions = list(self.state.subscriptions)
        one = SUBSCRIPTION_PATH.match(path)
        if one:
            return self._arm_subscription(one.group(1), subscriptions)
        if path == "/tenants":
            items = [self._arm_tenant()]  # ARM lists the home tenant, subscriptions or not
        else:
            items = [self._arm_subscription_item(s) for s in subscriptions]
        return json_reply(200, {"value": items, "count": {"type": "Total", "value": len(items)}})

    def _arm_subscription(self, wanted: str, subscriptions: list[Subscription]) -> Reply:
        for subscription in subscriptions:
            if subscription.subscription_id.lower() == wanted.lower():
                return json_reply(200, self._arm_subscription_item(subscription))
        return json_reply(
            404,
            {
                "error": {
                    "code": "SubscriptionNotFound",
                    "message": f"The subscription '{wanted}' could not be found.",
                }
            },
        )

    def _arm_subscription_item(self, subscription: Subscription) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{subscription.subscription_id}",
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": subscription.subscription_id,
            "tenantId": self.state.tenant_id,
            "displayName": subscription.display_name,
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
        }

    def _arm_tenant(self) -> dict[str, Any]:
        tenant, domain = self.state.tenant_id, "azfedemulated.onmicrosoft.com"
        return {
            "id": f"/tenants/{tenant}",
            "tenantId": tenant,
            "countryCode": "US",
            "displayName": "Azfed Emulated Tenant",
            "domains": [domain],
            "tenantCategory": "Home",
            "defaultDomain": domain,
            "tenantType": "AAD",
        }

    def _entra_token_is_live(self, token: str) -> bool:
        try:
            _, claims = parse_jwt(token)
        except MalformedTokenError:
            return False
        exp = claims.get("exp")
        return (
            signature_is_valid(token, self.state.entra_key.public_pem)
            and isinstance(exp, (int, float))
            and exp > self.state.now()
        )
