//! A small namespace-resolved XML tree for WS-Management messages. Every element and
//! attribute is named by (namespace URI, local name), never by prefix: real Windows replies
//! use other prefixes than our requests (`a:` for `wsa:`, `w:` for `wsman:`), redeclare
//! namespaces on inner elements and add elements we do not know. What a host sends is
//! untrusted: the caller caps the size, and the tree caps its depth and element count.

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

/// Deeper than any WS-Man message (about 8 levels).
const MAX_DEPTH: usize = 64;
/// More elements than any reply ecfleet asks for holds.
const MAX_ELEMENTS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<Attr>,
    /// The element's own text (entities resolved), without its children's.
    pub text: String,
    pub children: Vec<Element>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Empty for an unprefixed attribute.
    pub ns: String,
    pub name: String,
    pub value: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a well-formed XML message: {0}")]
pub struct XmlError(pub String);

impl Element {
    /// The first child `ns`:`name`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// Every child `ns`:`name`.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// The first element along `path` of (namespace, name) steps below this one.
    pub fn at(&self, path: &[(&str, &str)]) -> Option<&Element> {
        path.iter()
            .try_fold(self, |el, (ns, name)| el.child(ns, name))
    }

    /// The first element `ns`:`name` anywhere below this one (depth first).
    pub fn find(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find_map(|c| {
            if c.is(ns, name) {
                Some(c)
            } else {
                c.find(ns, name)
            }
        })
    }

    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// An unprefixed attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_empty() && a.name == name)
            .map(|a| a.value.as_str())
    }

    pub fn trimmed_text(&self) -> &str {
        self.text.trim()
    }
}

/// Parses one XML document into its root element.
pub fn parse(bytes: &[u8]) -> Result<Element, XmlError> {
    let err = |e: &dyn std::fmt::Display| XmlError(e.to_string());
    let mut reader = NsReader::from_reader(bytes);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(|e| err(&e))?;
        let ns = namespace(ns)?;
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() && stack.is_empty() => {
                let _ = start;
                return Err(XmlError("more than one root element".into()));
            }
            Event::Start(start) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(XmlError("nested too deep or too many elements".into()));
                }
                stack.push(element(&reader, ns, &start)?);
            }
            Event::Empty(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError("too many elements".into()));
                }
                let el = element(&reader, ns, &start)?;
                attach(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError("an end tag without its start".into()))?;
                attach(&mut stack, &mut root, el);
            }
            Event::Text(text) => match stack.last_mut() {
                Some(top) => top.text.push_str(&text.xml_content().map_err(|e| err(&e))?),
                None if text.iter().any(|b| !b.is_ascii_whitespace()) => {
                    return Err(XmlError("text outside the root element".into()));
                }
                None => {}
            },
            Event::CData(data) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&data.decode().map_err(|e| err(&e))?);
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push(resolve_reference(&reference)?);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError(format!("<{}> is not closed", stack[0].name)));
    }
    root.ok_or_else(|| XmlError("no root element".into()))
}

fn resolve_reference(reference: &quick_xml::events::BytesRef<'_>) -> Result<char, XmlError> {
    if let Some(c) = reference
        .resolve_char_ref()
        .map_err(|e| XmlError(e.to_string()))?
    {
        return Ok(c);
    }
    let name = reference.decode().map_err(|e| XmlError(e.to_string()))?;
    quick_xml::escape::resolve_predefined_entity(&name)
        .and_then(|s| s.chars().next())
        .ok_or_else(|| XmlError(format!("unknown entity &{name};")))
}

/// The namespace a name resolved to; a prefix that was never declared is an error.
fn namespace(ns: ResolveResult<'_>) -> Result<String, XmlError> {
    match ns {
        ResolveResult::Bound(n) => Ok(String::from_utf8_lossy(n.as_ref()).into_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(prefix) => Err(XmlError(format!(
            "the prefix {:?} is not declared",
            String::from_utf8_lossy(&prefix)
        ))),
    }
}

fn element(
    reader: &NsReader<&[u8]>,
    ns: String,
    start: &BytesStart<'_>,
) -> Result<Element, XmlError> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError(e.to_string()))?;
        let key = attr.key;
        // Namespace declarations are how names resolve, not data.
        if key.as_namespace_binding().is_some() {
            continue;
        }
        let (attr_ns, local) = reader.resolve_attribute(key);
        attrs.push(Attr {
            ns: namespace(attr_ns)?,
            name: String::from_utf8_lossy(local.as_ref()).into_owned(),
            value: attr
                .unescape_value()
                .map_err(|e| XmlError(e.to_string()))?
                .into_owned(),
        });
    }
    Ok(Element {
        ns,
        name,
        attrs,
        text: String::new(),
        children: Vec::new(),
    })
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_by_namespace_whatever_the_prefix() {
        let a =
            parse(br#"<s:E xmlns:s="urn:s" xmlns:x="urn:x"><x:B Name="n">1 &amp; 2</x:B></s:E>"#)
                .unwrap();
        let b = parse(br#"<E xmlns="urn:s"><q:B xmlns:q="urn:x" Name="n">1 &#38; 2</q:B></E>"#)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.child("urn:x", "B").unwrap().text, "1 & 2");
        assert_eq!(a.child("urn:x", "B").unwrap().attr("Name"), Some("n"));
    }

    #[test]
    fn broken_or_hostile_documents_are_errors_not_panics() {
        for doc in [
            &b"<a><b></a>"[..],
            b"<a>",
            b"",
            b"<a/><b/>",
            b"<a>&bogus;</a>",
            b"<p:a/>",
            b"\xff\xfe<a/>",
        ] {
            assert!(parse(doc).is_err(), "{}", String::from_utf8_lossy(doc));
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
