"""shoploop.engine"""
