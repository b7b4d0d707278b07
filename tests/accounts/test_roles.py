"""Each role reaches its own pages and sees its own navigation; nobody else gets in."""

import pytest

PAGES = {"/console/": ("marketer", "executive", "operator"), "/dashboard/": ("marketer", "executive", "operator")}
CAST = ("customer", "outsider", "marketer", "executive", "operator")


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_log_in(client, db, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/?next=")


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("role", CAST)
def test_role_pages_let_in_only_their_roles(client, request, path, role):
    client.force_login(request.getfixturevalue(role))

    response = client.get(path)

    assert response.status_code == (200 if role in PAGES[path] else 403)


def test_the_me_page_needs_a_login(client, db, customer):
    assert client.get("/me/").status_code == 302
    client.force_login(customer)
    assert client.get("/me/").status_code == 200


@pytest.mark.parametrize(
    ("role", "shown", "hidden"),
    [
        ("customer", ["My trials"], ["Console", "Dashboard", "Admin"]),
        ("marketer", ["My trials", "Console", "Dashboard"], ["Admin"]),
        ("executive", ["Console", "Dashboard"], ["Admin"]),
        ("operator", ["Console", "Dashboard", "Admin"], []),
    ],
)
def test_each_role_sees_its_own_navigation(client, request, role, shown, hidden):
    client.force_login(request.getfixturevalue(role))

    nav = client.get("/").content.decode().split('aria-label="Main"')[1].split("</nav>")[0]

    for label in shown:
        assert f">{label}</a>" in nav
    for label in hidden:
        assert f">{label}</a>" not in nav


def test_a_customer_cannot_enter_the_admin(client, customer):
    client.force_login(customer)

    response = client.get("/admin/")

    assert response.status_code == 302
    assert "/admin/login/" in response.url


@pytest.mark.parametrize(("role", "sees_imports"), [("marketer", True), ("operator", True), ("executive", False)])
def test_only_those_who_may_import_see_the_imports_tab(client, request, role, sees_imports):
    client.force_login(request.getfixturevalue(role))

    page = client.get("/console/").content.decode()

    assert ('href="/console/imports/"' in page) is sees_imports
