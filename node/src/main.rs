fn main() { println!("docaxis"); }
