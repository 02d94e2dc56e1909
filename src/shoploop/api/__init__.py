"""shoploop.api"""
