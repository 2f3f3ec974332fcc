"""Staff accounts: personal sign-in to the web pages, by password or single sign-on.

An account belongs to one agency and holds one role (`roles`), a named set of the API's
scopes, so a page checks an account exactly as it checks an API key. Local accounts keep an
argon2id hash of their password (`passwords`); accounts of an agency with an OpenID Connect
provider are made on first sign-in and take their role from the provider's groups each time
(`oidc`). `admin` creates, lists, re-roles, disables and resets them, for `kitledger account`
and `/v1/accounts` alike.
"""
