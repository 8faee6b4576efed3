//! `#[derive(Tree)]`: a struct whose fields are trees (tensors, vectors,
//! maps, other derived structs) becomes a tree itself, so transformations
//! take it and return it: `grad(|p: &Mlp| loss(p, &x, &y))(&params)` is an
//! `Mlp`.
//!
//! Fields marked `#[tree(skip)]` are not leaves: they are cloned from the
//! template when the struct is rebuilt (hyperparameters, activation choices),
//! and described by their `Debug` text (or type name) in `statics_into`, so
//! that `jit` does not reuse a program traced with other values of them.
//!
//! The macro reads the struct's tokens directly rather than through `syn`:
//! the shapes it accepts (named-field and tuple structs, with optional type
//! parameters) are few, and the workspace stays light to build.

use proc_macro::{Delimiter, TokenStream, TokenTree};

/// Derives `ferrax::tree::Tree` for a struct. See the crate documentation.
#[proc_macro_derive(Tree, attributes(tree))]
pub fn derive_tree(input: TokenStream) -> TokenStream {
    match expand(input) {
        Ok(code) => code.parse().expect("generated code parses"),
        Err(msg) => format!("compile_error!({msg:?});").parse().expect("an error parses"),
    }
}

/// One field: how to name it in generated code, and whether it is a leaf.
struct Field {
    access: String,
    skip: bool,
}

fn expand(input: TokenStream) -> Result<String, String> {
    let tokens: Vec<TokenTree> = input.into_iter().collect();
    let mut i = 0;
    // Skip outer attributes and visibility up to `struct`.
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Ident(id) if id.to_string() == "struct" => break,
            TokenTree::Ident(id) if id.to_string() == "enum" || id.to_string() == "union" => {
                return Err("derive(Tree) supports structs only".into())
            }
            _ => i += 1,
        }
    }
    let name = match tokens.get(i + 1) {
        Some(TokenTree::Ident(id)) => id.to_string(),
        _ => return Err("derive(Tree): expected a struct name".into()),
    };
    i += 2;
    // Generic parameters: the text between the angle brackets, and the bare names.
    let mut generics_decl = String::new();
    let mut generic_names = Vec::new();
    if matches!(tokens.get(i), Some(TokenTree::Punct(p)) if p.as_char() == '<') {
        let mut depth = 0;
        let mut expect_name = true;
        loop {
            let t = tokens.get(i).ok_or("derive(Tree): unclosed generics")?;
            match t {
                TokenTree::Punct(p) if p.as_char() == '<' => depth += 1,
                TokenTree::Punct(p) if p.as_char() == '>' => depth -= 1,
                TokenTree::Punct(p) if p.as_char() == ',' && depth == 1 => expect_name = true,
                TokenTree::Punct(p) if p.as_char() == '\'' && expect_name => {
                    return Err("derive(Tree): lifetime parameters are not supported".into())
                }
                TokenTree::Ident(id) if expect_name && depth == 1 => {
                    if id.to_string() == "const" {
                        return Err("derive(Tree): const generics are not supported".into());
                    }
                    generic_names.push(id.to_string());
                    expect_name = false;
                }
                _ => {}
            }
            generics_decl.push_str(&t.to_string());
            generics_decl.push(' ');
            i += 1;
            if depth == 0 {
                break;
            }
        }
    }
    let body = tokens[i..]
        .iter()
        .find_map(|t| match t {
            TokenTree::Group(g) if matches!(g.delimiter(), Delimiter::Brace | Delimiter::Parenthesis) => {
                Some(g.clone())
            }
            _ => None,
        })
        .ok_or("derive(Tree): expected a struct body")?;
    let fields = parse_fields(body.stream(), body.delimiter() == Delimiter::Brace)?;

    let flatten: String = fields
        .iter()
        .filter(|f| !f.skip)
        .map(|f| format!("::ferrax::tree::Tree::flatten_into(&self.{}, out);\n", f.access))
        .collect();
    let paths: String = fields
        .iter()
        .filter(|f| !f.skip)
        .map(|f| {
            format!("::ferrax::tree::Tree::paths_into(&self.{0}, &format!(\"{{}}{0}.\", prefix), out);\n", f.access)
        })
        .collect();
    // Leaves' subtrees describe their own statics; a skipped field is one.
    let statics: String = fields
        .iter()
        .map(|f| {
            if f.skip {
                format!(
                    "{{ use ::ferrax::tree::{{DescribeByDebug as _, DescribeByType as _}}; \
                     (&::ferrax::tree::Static(&self.{})).describe(out); }}\n",
                    f.access
                )
            } else {
                format!("::ferrax::tree::Tree::statics_into(&self.{}, out);\n", f.access)
            }
        })
        .collect();
    let rebuild_field = |f: &Field| {
        if f.skip {
            format!("::core::clone::Clone::clone(&self.{})", f.access)
        } else {
            format!("::ferrax::tree::Tree::rebuild(&self.{}, leaves)", f.access)
        }
    };
    let rebuild = if body.delimiter() == Delimiter::Brace {
        let inits: String = fields.iter().map(|f| format!("{}: {},\n", f.access, rebuild_field(f))).collect();
        format!("{name} {{ {inits} }}")
    } else {
        let inits: String = fields.iter().map(|f| format!("{},\n", rebuild_field(f))).collect();
        format!("{name}( {inits} )")
    };
    let (impl_generics, ty_generics, where_clause) = if generic_names.is_empty() {
        (String::new(), String::new(), String::new())
    } else {
        let bounds: Vec<String> = generic_names.iter().map(|g| format!("{g}: ::ferrax::tree::Tree")).collect();
        (generics_decl.clone(), format!("<{}>", generic_names.join(", ")), format!("where {}", bounds.join(", ")))
    };
    Ok(format!(
        "impl {impl_generics} ::ferrax::tree::Tree for {name} {ty_generics} {where_clause} {{
            fn flatten_into(&self, out: &mut ::std::vec::Vec<::ferrax::core::Tensor>) {{ {flatten} }}
            fn rebuild(&self, leaves: &mut dyn ::std::iter::Iterator<Item = ::ferrax::core::Tensor>) -> Self {{ {rebuild} }}
            fn paths_into(&self, prefix: &str, out: &mut ::std::vec::Vec<::std::string::String>) {{ {paths} }}
            fn statics_into(&self, out: &mut ::std::vec::Vec<::std::string::String>) {{ {statics} }}
        }}"
    ))
}

/// The fields of a struct body: named (`a: T, pub b: U`) or positional (`T, U`).
fn parse_fields(stream: TokenStream, named: bool) -> Result<Vec<Field>, String> {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    // Split at commas outside angle brackets (types like BTreeMap<String, T> contain commas).
    let mut pieces: Vec<Vec<TokenTree>> = vec![Vec::new()];
    let mut angle = 0i32;
    for t in tokens {
        if let TokenTree::Punct(p) = &t {
            match p.as_char() {
                '<' => angle += 1,
                '>' => angle -= 1,
                ',' if angle == 0 => {
                    pieces.push(Vec::new());
                    continue;
                }
                _ => {}
            }
        }
        pieces.last_mut().expect("one piece at least").push(t);
    }
    pieces.retain(|p| !p.is_empty());
    let mut fields = Vec::new();
    for (index, piece) in pieces.iter().enumerate() {
        let mut skip = false;
        let mut j = 0;
        // Attributes: `#` followed by a bracket group.
        while let Some(TokenTree::Punct(p)) = piece.get(j) {
            if p.as_char() != '#' {
                break;
            }
            if let Some(TokenTree::Group(g)) = piece.get(j + 1) {
                let text = g.stream().to_string().replace(' ', "");
                if text == "tree(skip)" {
                    skip = true;
                } else if text.starts_with("tree(") {
                    return Err(format!(
                        "derive(Tree): unknown attribute #[{text}]; the one attribute is #[tree(skip)]"
                    ));
                }
            }
            j += 2;
        }
        let access = if named {
            // Skip visibility (`pub`, `pub(crate)`) to the field name before `:`.
            let mut name = None;
            for (k, t) in piece.iter().enumerate().skip(j) {
                if let (TokenTree::Ident(id), Some(TokenTree::Punct(p))) = (t, piece.get(k + 1)) {
                    if p.as_char() == ':' && id.to_string() != "pub" {
                        name = Some(id.to_string());
                        break;
                    }
                }
            }
            name.ok_or("derive(Tree): could not find a field name")?
        } else {
            index.to_string()
        };
        fields.push(Field { access, skip });
    }
    Ok(fields)
}
