"""web/openapi_forms.py: the Request Body Object (OpenAPI 3.1 section 4.8.13) of a form."""

from __future__ import annotations

import pytest

from ostiary.web.openapi_forms import form_body

_FORM = "application/x-www-form-urlencoded"


def test_required_then_optional_fields_each_a_string_unless_a_schema_says_more() -> None:
    doc = form_body(
        "email",
        "password",
        optional=("next",),
        schemas={"password": {"format": "password"}},
    )
    assert doc == {
        "requestBody": {
            "required": True,
            "content": {
                _FORM: {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "email": {"type": "string"},
                            "password": {"type": "string", "format": "password"},
                            "next": {"type": "string"},
                        },
                        "required": ["email", "password"],
                    }
                }
            },
        }
    }


def test_a_schema_may_replace_the_type() -> None:
    many = {"type": "array", "items": {"type": "string"}}
    schema = form_body("resource", schemas={"resource": many})["requestBody"]["content"][_FORM]
    assert schema["schema"]["properties"] == {"resource": many}


def test_an_optional_body_lists_no_required_fields_and_may_list_none_at_all() -> None:
    assert form_body(optional=("access_token",), body_required=False) == {
        "requestBody": {
            "content": {
                _FORM: {
                    "schema": {"type": "object", "properties": {"access_token": {"type": "string"}}}
                }
            }
        }
    }
    assert form_body(body_required=False) == {
        "requestBody": {"content": {_FORM: {"schema": {"type": "object"}}}}
    }


def test_a_schema_for_a_field_the_form_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="decison"):
        form_body("decision", schemas={"decison": {"enum": ["allow", "deny"]}})
