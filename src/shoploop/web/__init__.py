"""shoploop.web"""
