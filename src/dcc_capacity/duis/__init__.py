"""DUIS messages: render, sign, validate and parse Service Requests and responses."""

from __future__ import annotations

NS_SR = "http://www.dccinterface.co.uk/ServiceUserGateway"
NS_RA = "http://www.dccinterface.co.uk/ResponseAndAlert"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"

__all__ = ["NS_DS", "NS_RA", "NS_SR", "NS_XSI"]
