"""Every place ccmon overrides or leans on a private part of faust-streaming or aiokafka, in one
package, so that an upgrade has one place to review. Written against faust-streaming 0.15.3 and
aiokafka 0.14 (pyproject.toml pins the minor versions); tests/unit/test_faust_private_api.py
fails, naming what to review, when an upgrade changes one of them."""
