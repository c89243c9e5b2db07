"""Checks SOAP messages against Panopto's published UserManagement 4.6 WSDL and schemas.

Reads a JSON list from stdin; each item is
  {"kind": "request", "soap_action": "...", "content_type": "...", "body": "..."}
or
  {"kind": "response", "body": "..."}.
For every item it checks the SOAP 1.1 envelope (Envelope, optional Header, one Body holding one
element), validates the Body's element against the schemas in tests/data/panopto (imports resolved
to the local copies, never fetched), and for requests checks the content type and that the
SOAPAction header is the quoted soapAction the WSDL binds to that element's operation.

Prints a JSON list of results (operation, auth member order, userKey/guid values as lxml reads
them, errors) and exits 1 when any item fails.
"""

import copy
import json
import pathlib
import sys

from lxml import etree

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "panopto"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
TEMPURI = "http://tempuri.org/"
V40 = "http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V40"
ARRAYS = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"


class LocalSchemas(etree.Resolver):
    """Maps the WSDL's `...UserManagement.svc?xsd=xsdN` locations to the saved files."""

    def resolve(self, url, pubid, context):
        if "?xsd=" in url:
            name = url.rsplit("?xsd=", 1)[1]
            path = DATA / f"UserManagement-4.6.{name}.xsd"
            if path.is_file():
                return self.resolve_filename(str(path), context)
        if "://" in url and not url.startswith("file:"):
            raise LookupError(f"{url} is not available offline")
        return None


def parser():
    p = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    p.resolvers.add(LocalSchemas())
    return p


def load_schema():
    doc = etree.parse(str(DATA / "UserManagement-4.6.xsd0.xsd"), parser())
    return etree.XMLSchema(doc)


def soap_actions():
    """Element QName of each operation's input -> the binding's soapAction."""
    wsdl = etree.parse(str(DATA / "UserManagement-4.6.wsdl"), parser()).getroot()
    ns = {"w": WSDL, "soap": WSDL_SOAP}
    messages = {}
    for message in wsdl.findall("w:message", ns):
        part = message.find("w:part", ns)
        if part is None or part.get("element") is None:
            continue
        prefix, local = part.get("element").split(":")
        messages[message.get("name")] = etree.QName(part.nsmap[prefix], local).text
    inputs = {}
    for op in wsdl.findall("w:portType/w:operation", ns):
        message = op.find("w:input", ns).get("message").split(":")[1]
        inputs[op.get("name")] = messages[message]
    actions = {}
    for op in wsdl.findall("w:binding/w:operation", ns):
        soap_op = op.find("soap:operation", ns)
        if soap_op is not None and op.get("name") in inputs:
            actions[inputs[op.get("name")]] = soap_op.get("soapAction")
    return actions


def body_element(root, errors):
    if root.tag != f"{{{SOAP}}}Envelope":
        errors.append(f"root is {root.tag}, not a SOAP 1.1 Envelope")
        return None
    children = [c for c in root if isinstance(c.tag, str)]
    names = [etree.QName(c).localname for c in children if etree.QName(c).namespace == SOAP]
    if names not in (["Body"], ["Header", "Body"]) or len(names) != len(children):
        errors.append(f"Envelope children are {[c.tag for c in children]}")
        return None
    body = children[-1]
    if (body.text or "").strip():
        errors.append("text directly in Body")
    elements = [c for c in body if isinstance(c.tag, str)]
    if len(elements) != 1:
        errors.append(f"Body holds {len(elements)} elements, not one")
        return None
    return elements[0]


def check(item, schema, actions):
    errors = []
    result = {"kind": item["kind"], "errors": errors}
    try:
        root = etree.fromstring(item["body"].encode("utf-8"), parser())
    except etree.XMLSyntaxError as e:
        errors.append(f"not well-formed: {e}")
        return result
    element = body_element(root, errors)
    if element is None:
        return result
    result["operation"] = etree.QName(element).localname
    doc = etree.ElementTree(copy.deepcopy(element))
    if not schema.validate(doc):
        errors.extend(f"line {e.line}: {e.message}" for e in schema.error_log)
    auth = element.find(f"{{{TEMPURI}}}auth")
    if auth is not None:
        result["auth"] = [etree.QName(c).localname for c in auth if isinstance(c.tag, str)]
        wrong_ns = [c.tag for c in auth if isinstance(c.tag, str) and etree.QName(c).namespace != V40]
        if wrong_ns:
            errors.append(f"auth members outside the V40 namespace: {wrong_ns}")
    user_key = element.find(f"{{{TEMPURI}}}userKey")
    if user_key is not None:
        result["user_key"] = user_key.text or ""
    guids = element.findall(f"{{{TEMPURI}}}userIds/{{{ARRAYS}}}guid")
    if guids:
        result["guids"] = [g.text for g in guids]
    result_user_key = element.find(f"{{{TEMPURI}}}GetUserByKeyResult/{{{V40}}}UserKey")
    if result_user_key is not None:
        result["result_user_key"] = result_user_key.text or ""
    if item["kind"] == "request":
        media = [p.strip().lower() for p in item.get("content_type", "").split(";")]
        if media != ["text/xml", "charset=utf-8"]:
            errors.append(f"content type {item.get('content_type')!r}, expected 'text/xml; charset=utf-8'")
        expected = actions.get(element.tag)
        if expected is None:
            errors.append(f"the WSDL binds no operation to {element.tag}")
        elif item.get("soap_action") != f'"{expected}"':
            errors.append(f"SOAPAction {item.get('soap_action')!r}, the WSDL says {expected!r} (quoted)")
        result["soap_action"] = item.get("soap_action")
    return result


def main():
    items = json.load(sys.stdin)
    schema = load_schema()
    actions = soap_actions()
    results = [check(item, schema, actions) for item in items]
    json.dump(results, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 1 if not items or any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
