"""The explorer's page: one HTML document (``explore_page.html``) with its
script and styles inline, which asks the JSON API for everything it shows
and writes every text into the page as text (``textContent``), never as
markup. It loads nothing from anywhere but its own server, and its
Content-Security-Policy allows only its own script and styles (by hash)
and requests to the same server.
"""
import base64
import hashlib
import os
import re

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    'explore_page.html')


def _hash(text):
    digest = hashlib.sha256(text.encode('utf-8')).digest()
    return "'sha256-{}'".format(base64.b64encode(digest).decode())


def page():
    """(the page's HTML bytes, its Content-Security-Policy)."""
    with open(PAGE, encoding='utf-8') as f:   # the package's own file
        html = f.read()
    script = re.search(r'<script>(.*?)</script>', html, re.S).group(1)
    style = re.search(r'<style>(.*?)</style>', html, re.S).group(1)
    csp = ("default-src 'none'; script-src {}; style-src {}; img-src 'self' "
           "data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
           "frame-ancestors 'none'".format(_hash(script), _hash(style)))
    return html.encode('utf-8'), csp
