"""Deployments of hotpose beyond one process: Ray Serve (`ray_app`, configured by `serve.yaml`)."""
