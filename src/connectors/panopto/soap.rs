//! SOAP 1.1 over HTTP: envelopes built with quick-xml (every value escaped) and responses read into a
//! small element tree, with a fault's `faultcode` and `faultstring` picked out.

use std::io;

use quick_xml::Writer;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesDecl, BytesStart, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// The SOAP 1.1 envelope namespace.
pub const ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The SOAP 1.2 envelope namespace (only recognised, to say so when a server answers with it).
pub const ENVELOPE_12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// The XML Schema instance namespace (`xsi:nil`).
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The content type of a SOAP 1.1 request.
pub const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// Deepest element nesting accepted in a response (SOAP answers are shallow; this bounds memory and recursion).
const MAX_DEPTH: usize = 128;

/// The first character of `s` that XML 1.0 element text cannot carry unchanged, if any: control
/// characters other than tab and line feed (a carriage return would be read back as a line feed),
/// and the non-characters U+FFFE and U+FFFF.
pub fn unsafe_xml_char(s: &str) -> Option<char> {
    s.chars().find(|&c| {
        (c.is_control() && c != '\t' && c != '\n' && !('\u{7f}'..='\u{9f}').contains(&c))
            || c == '\u{fffe}'
            || c == '\u{ffff}'
    })
}

/// Builds a SOAP 1.1 envelope (prefix `s`) whose `Body` holds what `body` writes.
pub fn envelope(body: impl FnOnce(&mut Writer<Vec<u8>>) -> io::Result<()>) -> io::Result<String> {
    let mut writer = Writer::new(Vec::new());
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    writer
        .create_element("s:Envelope")
        .with_attribute(("xmlns:s", ENVELOPE_NS))
        .write_inner_content(|w| {
            w.create_element("s:Body").write_inner_content(body)?;
            Ok(())
        })?;
    String::from_utf8(writer.into_inner()).map_err(io::Error::other)
}

/// Writes `<name>value</name>` with `value` escaped.
pub fn text_element(writer: &mut Writer<Vec<u8>>, name: &str, value: &str) -> io::Result<()> {
    writer
        .create_element(name)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

/// An XML element of a response, with namespaces resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Namespace URI, if the name is in one.
    pub namespace: Option<String>,
    /// Local name.
    pub name: String,
    /// Attributes other than namespace declarations.
    pub attributes: Vec<Attribute>,
    /// Child elements, in order.
    pub children: Vec<Element>,
    /// The element's own text (entities resolved; text between child elements included).
    pub text: String,
}

/// An attribute of an [`Element`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Namespace URI (unprefixed attributes have none).
    pub namespace: Option<String>,
    /// Local name.
    pub name: String,
    /// Value, entities resolved and whitespace normalised.
    pub value: String,
}

impl Element {
    /// Whether this element is `{namespace}name`.
    pub fn is(&self, namespace: Option<&str>, name: &str) -> bool {
        self.name == name && self.namespace.as_deref() == namespace
    }

    /// The first child `{namespace}name`.
    pub fn child(&self, namespace: Option<&str>, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(namespace, name))
    }

    /// The first child with this local name, whatever its namespace.
    pub fn child_local(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The value of attribute `{namespace}name`.
    pub fn attribute(&self, namespace: Option<&str>, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name && a.namespace.as_deref() == namespace)
            .map(|a| a.value.as_str())
    }

    /// Whether the element carries `xsi:nil="true"`.
    pub fn is_nil(&self) -> bool {
        self.attribute(Some(XSI_NS), "nil")
            .is_some_and(|v| matches!(v.trim(), "true" | "1"))
    }
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The root element's namespace and name, when parsing got that far.
    pub root: Option<(Option<String>, String)>,
    /// What went wrong.
    pub message: String,
}

/// Parses a whole XML document into its root element. Refuses a DOCTYPE (so no entity can be
/// declared), unknown entities, unbound prefixes, text outside the root, and deep nesting.
pub fn parse(text: &str) -> Result<Element, ParseError> {
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut root_name: Option<(Option<String>, String)> = None;
    let fail = |root_name: &Option<(Option<String>, String)>, message: String| ParseError {
        root: root_name.clone(),
        message,
    };
    loop {
        let (namespace, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (owned_namespace(ns), event),
            Err(e) => return Err(fail(&root_name, e.to_string())),
        };
        let namespace = namespace.map_err(|m| fail(&root_name, m))?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(fail(&root_name, "more than one root element".into()));
            }
            Event::Start(start) => {
                let element =
                    new_element(&reader, namespace, &start).map_err(|m| fail(&root_name, m))?;
                if stack.is_empty() {
                    root_name = Some((element.namespace.clone(), element.name.clone()));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(fail(
                        &root_name,
                        format!("elements nest deeper than {MAX_DEPTH}"),
                    ));
                }
                stack.push(element);
            }
            Event::Empty(start) => {
                let element =
                    new_element(&reader, namespace, &start).map_err(|m| fail(&root_name, m))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => {
                        root_name = Some((element.namespace.clone(), element.name.clone()));
                        root = Some(element);
                    }
                }
            }
            Event::End(_) => {
                let Some(element) = stack.pop() else {
                    return Err(fail(&root_name, "an end tag without a start tag".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                match stack.last_mut() {
                    Some(element) => element.text.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => {
                        return Err(fail(&root_name, "text outside the root element".into()));
                    }
                }
            }
            Event::CData(t) => match stack.last_mut() {
                Some(element) => element.text.push_str(&t.xml10_content()),
                None => return Err(fail(&root_name, "CDATA outside the root element".into())),
            },
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match resolve_predefined_entity(&r) {
                        Some(s) => s.to_string(),
                        None => {
                            return Err(fail(&root_name, format!("unknown entity &{};", &*r)));
                        }
                    },
                    Err(e) => return Err(fail(&root_name, e.to_string())),
                };
                match stack.last_mut() {
                    Some(element) => element.text.push_str(&resolved),
                    None => {
                        return Err(fail(
                            &root_name,
                            "a reference outside the root element".into(),
                        ));
                    }
                }
            }
            Event::DocType(_) => {
                return Err(fail(&root_name, "a DOCTYPE is not accepted".into()));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(fail(
            &root_name,
            format!("the document ends inside <{}>", open.name),
        ));
    }
    root.ok_or_else(|| fail(&root_name, "no element".into()))
}

fn owned_namespace(ns: ResolveResult<'_>) -> Result<Option<String>, String> {
    match ns {
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Bound(ns) => Ok(Some(ns.0.to_string())),
        ResolveResult::Unknown(prefix) => Err(format!("unbound namespace prefix {prefix:?}")),
    }
}

fn new_element(
    reader: &NsReader<&[u8]>,
    namespace: Option<String>,
    start: &BytesStart<'_>,
) -> Result<Element, String> {
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        if attribute.key.as_namespace_binding().is_some() {
            continue;
        }
        let (ns, local) = reader.resolver().resolve_attribute(attribute.key);
        let namespace = owned_namespace(ns)?;
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        attributes.push(Attribute {
            namespace,
            name: local.into_inner().to_string(),
            value: value.into_owned(),
        });
    }
    Ok(Element {
        namespace,
        name: start.local_name().into_inner().to_string(),
        attributes,
        children: Vec::new(),
        text: String::new(),
    })
}

/// A SOAP 1.1 fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `faultcode`, e.g. `s:Client` or `a:InternalServiceFault` (as written, prefix included).
    pub code: String,
    /// `faultstring`: the server's message.
    pub string: String,
}

/// What a SOAP response carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// The first element of `Body`: the operation's response.
    Response(Element),
    /// A `Fault` in `Body`.
    Fault(Fault),
}

/// Why a response is not a usable SOAP 1.1 envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Not a SOAP envelope at all (HTML, JSON, empty, another XML document).
    NotSoap(String),
    /// A SOAP envelope that is broken (bad XML, no Body).
    Malformed(String),
}

/// Reads a response body as a SOAP 1.1 envelope.
pub fn read_envelope(body: &[u8]) -> Result<Envelope, ReadError> {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(ReadError::NotSoap("the body is not UTF-8 text".into()));
    };
    if text.trim().is_empty() {
        return Err(ReadError::NotSoap("the body is empty".into()));
    }
    let root = parse(text).map_err(|e| match &e.root {
        Some((Some(ns), name)) if ns == ENVELOPE_NS && name == "Envelope" => {
            ReadError::Malformed(e.message)
        }
        _ => ReadError::NotSoap(format!("not XML: {}", e.message)),
    })?;
    if root.is(Some(ENVELOPE_12_NS), "Envelope") {
        return Err(ReadError::NotSoap(
            "a SOAP 1.2 envelope; this endpoint does not speak SOAP 1.1".into(),
        ));
    }
    if !root.is(Some(ENVELOPE_NS), "Envelope") {
        return Err(ReadError::NotSoap(format!(
            "the root element is <{}>",
            root.name
        )));
    }
    let Some(body) = root
        .children
        .into_iter()
        .find(|c| c.is(Some(ENVELOPE_NS), "Body"))
    else {
        return Err(ReadError::Malformed("the envelope has no Body".into()));
    };
    let Some(first) = body.children.into_iter().next() else {
        return Err(ReadError::Malformed("the Body is empty".into()));
    };
    if first.is(Some(ENVELOPE_NS), "Fault") {
        // SOAP 1.1 puts faultcode and faultstring in no namespace; some servers qualify them.
        let code = first
            .child_local("faultcode")
            .map(|c| c.text.trim().to_string())
            .unwrap_or_default();
        let string = first
            .child_local("faultstring")
            .map(|c| c.text.trim().to_string())
            .unwrap_or_default();
        return Ok(Envelope::Fault(Fault { code, string }));
    }
    Ok(Envelope::Response(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_reads_back_unchanged() {
        let value = "MyIdP\\o'brien & <co> \"x\"\ttab\nline";
        let xml = envelope(|w| text_element(w, "v", value)).unwrap();
        assert!(xml.contains("&amp;") && xml.contains("&lt;co&gt;"), "{xml}");
        assert!(!xml.contains("& <"), "{xml}");
        let Envelope::Response(v) = read_envelope(xml.as_bytes()).unwrap() else {
            panic!("not a response")
        };
        assert_eq!(v.text, value);
    }

    #[test]
    fn namespaces_nil_and_references_are_resolved() {
        let xml = r#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<R xmlns="urn:t"><a:X xmlns:a="urn:a" xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:nil="true"/>
<a:Y xmlns:a="urn:a">A&#x26;B&#60;C<![CDATA[<D>]]></a:Y></R></s:Body></s:Envelope>"#;
        let Envelope::Response(r) = read_envelope(xml.as_bytes()).unwrap() else {
            panic!("not a response")
        };
        assert!(r.is(Some("urn:t"), "R"));
        assert!(r.child(Some("urn:a"), "X").unwrap().is_nil());
        assert_eq!(r.child(Some("urn:a"), "Y").unwrap().text, "A&B<C<D>");
        assert!(r.child(Some("urn:t"), "Y").is_none());
    }

    #[test]
    fn a_fault_is_read_with_code_and_string() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
<faultcode>s:Client</faultcode><faultstring xml:lang="en-US">Invalid credentials</faultstring>
</s:Fault></s:Body></s:Envelope>"#;
        assert_eq!(
            read_envelope(xml.as_bytes()).unwrap(),
            Envelope::Fault(Fault {
                code: "s:Client".into(),
                string: "Invalid credentials".into()
            })
        );
    }

    #[test]
    fn other_documents_are_not_soap_and_broken_envelopes_are_malformed() {
        for body in [
            &b"<html><body>Sign in</body></html>"[..],
            b"{\"error\": 1}",
            b"",
            b"plain text",
            b"\xff\xfe<\x00",
            b"<html><body>unclosed",
        ] {
            assert!(
                matches!(read_envelope(body), Err(ReadError::NotSoap(_))),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        for body in [
            &b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><R>"[..],
            b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"></s:Envelope>",
            b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body/></s:Envelope>",
            b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><R>&foo;</R></s:Body></s:Envelope>",
        ] {
            assert!(
                matches!(read_envelope(body), Err(ReadError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_doctype_and_deep_nesting_are_refused() {
        let doctype = "<!DOCTYPE x [<!ENTITY e \"boom\">]><x>&e;</x>";
        assert!(parse(doctype).unwrap_err().message.contains("DOCTYPE"));
        let deep = format!("{}{}", "<a>".repeat(200), "</a>".repeat(200));
        assert!(parse(&deep).unwrap_err().message.contains("deeper"));
    }

    #[test]
    fn unsafe_characters_are_found() {
        assert_eq!(unsafe_xml_char("MyIdP\\ann"), None);
        assert_eq!(unsafe_xml_char("tab\tand\nnewline"), None);
        assert_eq!(unsafe_xml_char("cr\r"), Some('\r'));
        assert_eq!(unsafe_xml_char("nul\0"), Some('\0'));
        assert_eq!(unsafe_xml_char("x\u{ffff}"), Some('\u{ffff}'));
    }
}
