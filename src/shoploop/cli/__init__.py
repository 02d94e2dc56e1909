"""shoploop.cli"""
