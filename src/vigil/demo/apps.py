"""Small pieces of the fleet's Python services, so the Sentry SDK reports real exceptions.

Each module's source is compiled under the path it would have on the server
(``/srv/checkout/checkout/pricing.py``...) and registered with ``linecache``, so the exceptions
they raise carry genuine tracebacks with file names, functions, line numbers and source context,
exactly what ``sentry-sdk`` sends for a production crash. ``raise_problem`` runs the code path
that fails in the way a report asks for and returns the exception.
"""

from __future__ import annotations

import linecache
import types
from collections.abc import Callable
from typing import Any

_SOURCES: dict[str, tuple[str, str]] = {
    # module name: (path on the server, source)
    "checkout.pricing": (
        "/srv/checkout/checkout/pricing.py",
        '''"""Order pricing."""
from decimal import Decimal

RATES = {"EUR": Decimal("1"), "USD": Decimal("1.08"), "GBP": Decimal("0.86")}


class PricingError(Exception):
    pass


def convert(amount, currency):
    try:
        return (amount * RATES[currency]).quantize(Decimal("0.01"))
    except KeyError:
        raise PricingError(f"no exchange rate for {currency!r}") from None


def line_total(item):
    # 2.15: quantity moved into item["options"] for bundles; older carts lack it
    return Decimal(item["price"]) * item.get("quantity")


def order_total(order):
    subtotal = sum(line_total(item) for item in order["items"])
    # 2.15: the currency comes from the cart now, not from the storefront session
    return convert(subtotal, order["currency"])
''',
    ),
    "checkout.payments": (
        "/srv/checkout/checkout/payments.py",
        '''"""Payment gateway client."""


class GatewayTimeout(Exception):
    """The payment gateway did not answer in time."""


def charge(order_id, amount, timeout=10.0):
    response = _post("/v1/charges", {"order": order_id, "amount": str(amount)}, timeout)
    return response["id"]


def _post(path, body, timeout):
    raise GatewayTimeout(f"POST https://pay.example.net{path} timed out after {timeout:.0f}s")
''',
    ),
    "checkout.api": (
        "/srv/checkout/checkout/api.py",
        '''"""HTTP API of the checkout service."""


def create_order(request):
    order = request["json"]
    order.setdefault("items", [])
    total = pricing.order_total(order)
    charge_id = payments.charge(order["id"], total)
    return {"id": order["id"], "total": str(total), "charge": charge_id}
''',
    ),
    "storefront.sessions": (
        "/srv/storefront/storefront/sessions.py",
        '''"""Server-side sessions on local disk."""
import errno


def save(session_id, data):
    tmp_path = f"/var/cache/storefront/sessions/{session_id}.tmp"
    _write(tmp_path, data)


def _write(path, data):
    raise OSError(errno.ENOSPC, "No space left on device", path)
''',
    ),
    "billing.tasks": (
        "/srv/billing/billing/tasks.py",
        '''"""Celery tasks of the billing worker."""


def send_receipt(invoice_id):
    receipt = {"invoice": invoice_id}
    mailer.send(receipt)
''',
    ),
    "billing.mail": (
        "/srv/billing/billing/mail.py",
        '''"""Outgoing mail."""


def send(receipt, host="smtp.shop.internal"):
    raise ConnectionRefusedError(111, "Connection refused")
''',
    ),
    "catalog.views": (
        "/srv/catalog/catalog/views.py",
        '''"""Catalog HTTP views."""


def list_items(params):
    page = int(params.get("page", "1"))
    size = int(params.get("size", "20"))
    return {"page": page, "size": size}
''',
    ),
}
# which modules each module refers to by name
_IMPORTS: dict[str, dict[str, str]] = {
    "checkout.api": {"pricing": "checkout.pricing", "payments": "checkout.payments"},
    "billing.tasks": {"mailer": "billing.mail"},
}
IN_APP = ("checkout", "storefront", "billing", "catalog")
PATHS = frozenset(path for path, _ in _SOURCES.values())

_modules: dict[str, types.ModuleType] = {}


def _load() -> dict[str, types.ModuleType]:
    if _modules:
        return _modules
    for name, (path, source) in _SOURCES.items():
        module = types.ModuleType(name)
        module.__file__ = path
        lines = source.splitlines(True)
        # mtime None: linecache.checkcache keeps the entry although the file does not exist
        linecache.cache[path] = (len(source), None, lines, path)
        exec(compile(source, path, "exec"), module.__dict__)
        _modules[name] = module
    for name, refs in _IMPORTS.items():
        for alias, target in refs.items():
            setattr(_modules[name], alias, _modules[target])
    return _modules


def _order(**extra: Any) -> dict[str, Any]:
    return {"json": {"id": "ord_7f3a9c", "items": [{"price": "19.90", "quantity": 2}], **extra}}


_PROBLEMS: dict[str, Callable[[dict[str, types.ModuleType]], object]] = {
    "missing_currency": lambda m: m["checkout.api"].create_order(_order()),
    "quantity_none": lambda m: m["checkout.api"].create_order(
        {"json": {"id": "ord_1c2d3e", "currency": "EUR", "items": [{"price": "5.00"}]}}
    ),
    "gateway_timeout": lambda m: m["checkout.api"].create_order(_order(currency="EUR")),
    "disk_full": lambda m: m["storefront.sessions"].save("8c1f0b9e2d4a", b"{}"),
    "smtp_refused": lambda m: m["billing.tasks"].send_receipt("inv_20931"),
    "bad_page_param": lambda m: m["catalog.views"].list_items({"page": "2", "size": "20;DROP"}),
}
PROBLEMS = frozenset(_PROBLEMS)


def raise_problem(problem: str) -> BaseException:
    """Run the failing code path; returns the exception it raised (with its traceback)."""
    modules = _load()
    try:
        _PROBLEMS[problem](modules)
    except Exception as exc:
        return exc
    raise AssertionError(f"problem {problem!r} did not fail")  # pragma: no cover - sources above always fail
