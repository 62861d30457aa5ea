fn main() {
    for a in std::env::args().skip(1) {
        let kind = if a.contains("status") { docaxis::schema::SchemaKind::Status } else { docaxis::schema::SchemaKind::Document };
        match docaxis::schema::validate(kind, &std::fs::read(&a).unwrap()) {
            Ok(()) => println!("{a}: OK"),
            Err(docaxis::schema::SchemaError::Invalid { violations, .. }) => { println!("{a}:"); for v in violations { println!("   {v}"); } }
            Err(e) => println!("{a}: {e}"),
        }
    }
}
