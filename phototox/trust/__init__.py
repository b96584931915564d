"""Whether a number can be trusted: pixel size, domain, image quality, controls and calibration, unlike-your-controls novelty; the assessor that runs them."""
