"""shoploop.privacy"""
