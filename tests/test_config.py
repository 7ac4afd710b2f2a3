"""Settings from the environment: ours and any of Flask's, typed like their defaults."""

from datetime import timedelta

from web import config


def test_any_flask_setting_comes_from_the_environment_typed():
    settings = config.from_environment(
        {
            "SESSION_COOKIE_SECURE": "1",
            "PERMANENT_SESSION_LIFETIME": "3600",
            "TRUSTED_HOSTS": "example.com, .example.org",
            "MAX_COOKIE_SIZE": "2048",
            "PREFERRED_URL_SCHEME": "https",
            "DEBUG": "0",
        }
    )
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=1)
    assert settings["TRUSTED_HOSTS"] == ["example.com", ".example.org"]
    assert (settings["MAX_COOKIE_SIZE"], settings["PREFERRED_URL_SCHEME"], settings["DEBUG"]) == (
        2048,
        "https",
        False,
    )


def test_our_settings_keep_their_defaults_and_types():
    settings = config.from_environment({"START_RATE_LIMIT": "5", "TRUSTED_PROXIES": "1"})
    assert (settings["START_RATE_LIMIT"], settings["TRUSTED_PROXIES"]) == (5, 1)
    assert config.from_environment({})["START_RATE_LIMIT"] == 60
    assert "SESSION_COOKIE_SECURE" not in config.from_environment({})
